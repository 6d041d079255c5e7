//! The few WASI preview-1 functions a proxy-wasm module uses, implemented
//! over the emulator's state: environment variables set by the test,
//! deterministic random bytes, the virtual clock, captured stdout/stderr.
//! Anything else answers ENOSYS and is recorded, so a test can see it.

use super::guest::{read, write, write_u32, write_u64};
use super::state::State;
use wasmtime::{Caller, FuncType, Linker, Result, Val};

pub const MODULE: &str = "wasi_snapshot_preview1";

const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
pub const ENOSYS: i32 = 52;

type C<'a> = Caller<'a, State>;

fn enter(caller: &mut C<'_>, name: &str) {
    caller.data_mut().count(MODULE, name);
}

fn ok_or_fault(written: bool) -> i32 {
    if written {
        ESUCCESS
    } else {
        EFAULT
    }
}

fn environ_strings(state: &State) -> Vec<Vec<u8>> {
    state
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

/// Defines the WASI import `name`; unknown ones get an ENOSYS stub.
pub fn define(linker: &mut Linker<State>, name: &str, ty: &FuncType) -> Result<()> {
    match name {
        "args_sizes_get" => {
            linker.func_wrap(MODULE, name, |mut c: C<'_>, argc: i32, size: i32| {
                enter(&mut c, "args_sizes_get");
                ok_or_fault(write_u32(&mut c, argc, 0) && write_u32(&mut c, size, 0))
            })?
        }
        "args_get" => linker.func_wrap(MODULE, name, |mut c: C<'_>, _argv: i32, _buf: i32| {
            enter(&mut c, "args_get");
            ESUCCESS
        })?,
        "environ_sizes_get" => {
            linker.func_wrap(MODULE, name, |mut c: C<'_>, count: i32, size: i32| {
                enter(&mut c, "environ_sizes_get");
                let strings = environ_strings(c.data());
                let total: usize = strings.iter().map(Vec::len).sum();
                ok_or_fault(
                    write_u32(&mut c, count, strings.len() as u32)
                        && write_u32(&mut c, size, total as u32),
                )
            })?
        }
        "environ_get" => {
            linker.func_wrap(MODULE, name, |mut c: C<'_>, environ: i32, buf: i32| {
                enter(&mut c, "environ_get");
                let strings = environ_strings(c.data());
                let mut at = buf as u32;
                for (i, s) in strings.iter().enumerate() {
                    let slot = environ + 4 * i as i32;
                    if !write_u32(&mut c, slot, at) || !write(&mut c, at as i32, s) {
                        return EFAULT;
                    }
                    at += s.len() as u32;
                }
                ESUCCESS
            })?
        }
        "random_get" => linker.func_wrap(MODULE, name, |mut c: C<'_>, buf: i32, len: i32| {
            enter(&mut c, "random_get");
            let bytes = c.data_mut().random_bytes(len as u32 as usize);
            ok_or_fault(write(&mut c, buf, &bytes))
        })?,
        "clock_time_get" => linker.func_wrap(
            MODULE,
            name,
            |mut c: C<'_>, clock: i32, _precision: i64, ret: i32| {
                enter(&mut c, "clock_time_get");
                // Realtime and monotonic both follow the virtual clock.
                if !(0..=3).contains(&clock) {
                    return EINVAL;
                }
                let now = c.data().now_nanos;
                ok_or_fault(write_u64(&mut c, ret, now))
            },
        )?,
        "clock_res_get" => {
            linker.func_wrap(MODULE, name, |mut c: C<'_>, _clock: i32, ret: i32| {
                enter(&mut c, "clock_res_get");
                ok_or_fault(write_u64(&mut c, ret, 1))
            })?
        }
        "fd_write" => linker.func_wrap(
            MODULE,
            name,
            |mut c: C<'_>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32| {
                enter(&mut c, "fd_write");
                if fd != 1 && fd != 2 {
                    return EBADF;
                }
                let mut out = Vec::new();
                for i in 0..iovs_len {
                    let Some(iov) = read(&mut c, iovs + 8 * i, 8) else {
                        return EFAULT;
                    };
                    let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                    let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                    let Some(bytes) = read(&mut c, ptr, len) else {
                        return EFAULT;
                    };
                    out.extend_from_slice(&bytes);
                }
                let n = out.len() as u32;
                let s = c.data_mut();
                if fd == 1 {
                    &mut s.stdout
                } else {
                    &mut s.stderr
                }
                .extend_from_slice(&out);
                ok_or_fault(write_u32(&mut c, nwritten, n))
            },
        )?,
        "sched_yield" => linker.func_wrap(MODULE, name, |mut c: C<'_>| {
            enter(&mut c, "sched_yield");
            ESUCCESS
        })?,
        "proc_exit" => linker.func_wrap(MODULE, name, |mut c: C<'_>, code: i32| -> Result<()> {
            enter(&mut c, "proc_exit");
            c.data_mut().exit_code = Some(code);
            Err(wasmtime::Error::msg(format!(
                "the module called proc_exit({code})"
            )))
        })?,
        _ => {
            let import = name.to_string();
            linker.func_new(
                MODULE,
                name,
                ty.clone(),
                move |mut c: C<'_>, _args: &[Val], results: &mut [Val]| {
                    enter(&mut c, &import);
                    *c.data_mut()
                        .stub_calls
                        .entry(format!("{MODULE}.{import}"))
                        .or_default() += 1;
                    for r in results.iter_mut() {
                        *r = Val::I32(ENOSYS);
                    }
                    Ok(())
                },
            )?
        }
    };
    Ok(())
}
