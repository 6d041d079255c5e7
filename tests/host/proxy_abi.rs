//! The host side of the proxy-wasm ABI 0.2.1 (`env.proxy_*`), behaving like
//! Envoy where the module can tell the difference: NotFound for absent
//! properties and headers, BadArgument for unknown clusters or a dispatch
//! without `:method`/`:path`/`:authority`, empty values returned as (0, 0).
//! Logs, properties, time, ticks, metrics, shared data and done live here; header maps,
//! buffers, calls and local replies in [`proxy_maps`]. Any other `proxy_*`
//! import gets a stub that records the call and returns Ok. What the proxy
//! does is the state model's (model/ops.rs); this only moves bytes.

use super::guest::{read, read_string, return_bytes, write_u32, write_u64};
use super::proxy_maps;
use super::state::{status, State};
use wasmtime::{Caller, FuncType, Linker, Result, Val};

type C<'a> = Caller<'a, State>;

fn enter(caller: &mut C<'_>, name: &str) {
    caller.data_mut().count("env", name);
}

/// Defines the `env` import `name`. Returns false for an import that is not
/// part of proxy-wasm, which the caller reports as an error.
pub fn define(linker: &mut Linker<State>, name: &str, ty: &FuncType) -> Result<bool> {
    const M: &str = "env";
    if proxy_maps::define(linker, name)? {
        return Ok(true);
    }
    match name {
        "proxy_log" => {
            linker.func_wrap(M, name, |mut c: C<'_>, level: i32, ptr: i32, len: i32| {
                enter(&mut c, "proxy_log");
                let Some(message) = read_string(&mut c, ptr, len) else {
                    return status::INVALID_MEMORY_ACCESS;
                };
                c.data_mut().log(level as u32, message);
                status::OK
            })?
        }
        "proxy_get_log_level" => linker.func_wrap(M, name, |mut c: C<'_>, ret: i32| {
            enter(&mut c, "proxy_get_log_level");
            let level = c.data().log_level;
            if write_u32(&mut c, ret, level) {
                status::OK
            } else {
                status::INVALID_MEMORY_ACCESS
            }
        })?,
        "proxy_get_property" => linker.func_wrap(
            M,
            name,
            |mut c: C<'_>, ptr: i32, len: i32, ret_ptr: i32, ret_size: i32| -> Result<i32> {
                enter(&mut c, "proxy_get_property");
                let Some(path) = read(&mut c, ptr, len) else {
                    return Ok(status::INVALID_MEMORY_ACCESS);
                };
                match c.data_mut().get_property(&path) {
                    Ok(value) => return_bytes(&mut c, &value, ret_ptr, ret_size),
                    Err(status) => Ok(status),
                }
            },
        )?,
        "proxy_set_property" => linker.func_wrap(
            M,
            name,
            |mut c: C<'_>, ptr: i32, len: i32, vptr: i32, vlen: i32| {
                enter(&mut c, "proxy_set_property");
                let (Some(path), Some(value)) = (read(&mut c, ptr, len), read(&mut c, vptr, vlen))
                else {
                    return status::INVALID_MEMORY_ACCESS;
                };
                c.data_mut().properties.insert(path, value);
                status::OK
            },
        )?,
        "proxy_get_current_time_nanoseconds" => {
            linker.func_wrap(M, name, |mut c: C<'_>, ret: i32| {
                enter(&mut c, "proxy_get_current_time_nanoseconds");
                let now = c.data().now_nanos;
                if write_u64(&mut c, ret, now) {
                    status::OK
                } else {
                    status::INVALID_MEMORY_ACCESS
                }
            })?
        }
        "proxy_set_tick_period_milliseconds" => {
            linker.func_wrap(M, name, |mut c: C<'_>, ms: i32| {
                enter(&mut c, "proxy_set_tick_period_milliseconds");
                c.data_mut().set_tick_period(ms as u32);
                status::OK
            })?
        }
        "proxy_define_metric" => linker.func_wrap(
            M,
            name,
            |mut c: C<'_>, kind: i32, ptr: i32, len: i32, ret: i32| {
                enter(&mut c, "proxy_define_metric");
                let Some(metric) = read_string(&mut c, ptr, len) else {
                    return status::INVALID_MEMORY_ACCESS;
                };
                let id = match c.data_mut().define_metric(kind, metric) {
                    Ok(id) => id,
                    Err(status) => return status,
                };
                if write_u32(&mut c, ret, id) {
                    status::OK
                } else {
                    status::INVALID_MEMORY_ACCESS
                }
            },
        )?,
        "proxy_increment_metric" => {
            linker.func_wrap(M, name, |mut c: C<'_>, id: i32, delta: i64| {
                enter(&mut c, "proxy_increment_metric");
                match c.data_mut().increment_metric(id, delta) {
                    Ok(()) => status::OK,
                    Err(status) => status,
                }
            })?
        }
        "proxy_get_shared_data" => linker.func_wrap(
            M,
            name,
            |mut c: C<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| -> Result<i32> {
                enter(&mut c, "proxy_get_shared_data");
                let Some(key) = read_string(&mut c, kp, kl) else {
                    return Ok(status::INVALID_MEMORY_ACCESS);
                };
                let Some(value) = c.data().shared_data.get(&key).cloned() else {
                    return Ok(status::NOT_FOUND);
                };
                if !write_u32(&mut c, cas, 1) {
                    return Ok(status::INVALID_MEMORY_ACCESS);
                }
                return_bytes(&mut c, &value, vp, vl)
            },
        )?,
        "proxy_set_shared_data" => linker.func_wrap(
            M,
            name,
            |mut c: C<'_>, kp: i32, kl: i32, vp: i32, vl: i32, _cas: i32| -> i32 {
                enter(&mut c, "proxy_set_shared_data");
                let (Some(key), Some(value)) = (read_string(&mut c, kp, kl), read(&mut c, vp, vl))
                else {
                    return status::INVALID_MEMORY_ACCESS;
                };
                c.data_mut().shared_data.insert(key, value);
                status::OK
            },
        )?,
        "proxy_record_metric" => {
            linker.func_wrap(M, name, |mut c: C<'_>, id: i32, value: i64| {
                enter(&mut c, "proxy_record_metric");
                let Some(m) = c.data_mut().metric_mut(id) else {
                    return status::NOT_FOUND;
                };
                m.value = value;
                status::OK
            })?
        }
        "proxy_get_metric" => linker.func_wrap(M, name, |mut c: C<'_>, id: i32, ret: i32| {
            enter(&mut c, "proxy_get_metric");
            let Some(value) = c.data_mut().metric_mut(id).map(|m| m.value) else {
                return status::NOT_FOUND;
            };
            if write_u64(&mut c, ret, value as u64) {
                status::OK
            } else {
                status::INVALID_MEMORY_ACCESS
            }
        })?,
        "proxy_done" => linker.func_wrap(M, name, |mut c: C<'_>| {
            enter(&mut c, "proxy_done");
            c.data_mut().done();
            status::OK
        })?,
        "proxy_set_effective_context" => linker.func_wrap(M, name, |mut c: C<'_>, ctx: i32| {
            enter(&mut c, "proxy_set_effective_context");
            let s = c.data_mut();
            if !s.live_contexts.contains(&(ctx as u32)) {
                return status::BAD_ARGUMENT;
            }
            s.effective_context = Some(ctx as u32);
            status::OK
        })?,
        other if other.starts_with("proxy_") => {
            let import = other.to_string();
            linker.func_new(
                M,
                name,
                ty.clone(),
                move |mut c: C<'_>, _args: &[Val], results: &mut [Val]| {
                    enter(&mut c, &import);
                    *c.data_mut()
                        .stub_calls
                        .entry(format!("env.{import}"))
                        .or_default() += 1;
                    for r in results.iter_mut() {
                        *r = Val::I32(status::OK);
                    }
                    Ok(())
                },
            )?
        }
        _ => return Ok(false),
    };
    Ok(true)
}
