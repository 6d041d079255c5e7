//! Moving bytes between proxy and module: header maps, buffers, outgoing
//! calls and local replies. Header maps exist only while the proxy has them
//! (request maps during a request, call-response maps during a reply);
//! asking for an absent one is a BadArgument, as in Envoy. What the proxy
//! does is the state model's (model/ops.rs); this only moves bytes.

use super::guest::{decode_pairs, encode_pairs, read, read_string, return_bytes, write_u32};
use super::state::{find, status, State};
use wasmtime::{Caller, Linker, Result};

type C<'a> = Caller<'a, State>;

fn enter(caller: &mut C<'_>, name: &str) {
    caller.data_mut().count("env", name);
}

/// Defines `name` if it is one of these imports; false otherwise.
pub fn define(linker: &mut Linker<State>, name: &str) -> Result<bool> {
    const M: &str = "env";
    match name {
        "proxy_get_header_map_pairs" => linker.func_wrap(
            M,
            name,
            |mut c: C<'_>, map: i32, ret_ptr: i32, ret_size: i32| -> Result<i32> {
                enter(&mut c, "proxy_get_header_map_pairs");
                match c.data().header_map(map) {
                    Ok(pairs) => {
                        let bytes = if pairs.is_empty() {
                            Vec::new()
                        } else {
                            encode_pairs(pairs)
                        };
                        return_bytes(&mut c, &bytes, ret_ptr, ret_size)
                    }
                    Err(status) => Ok(status),
                }
            },
        )?,
        "proxy_get_header_map_size" => {
            linker.func_wrap(M, name, |mut c: C<'_>, map: i32, ret: i32| {
                enter(&mut c, "proxy_get_header_map_size");
                let Some(size) = c.data().maps.get(&map).map(|p| encode_pairs(p).len()) else {
                    return status::BAD_ARGUMENT;
                };
                if write_u32(&mut c, ret, size as u32) {
                    status::OK
                } else {
                    status::INVALID_MEMORY_ACCESS
                }
            })?
        }
        "proxy_set_header_map_pairs" => {
            linker.func_wrap(M, name, |mut c: C<'_>, map: i32, ptr: i32, len: i32| {
                enter(&mut c, "proxy_set_header_map_pairs");
                let Some(bytes) = read(&mut c, ptr, len) else {
                    return status::INVALID_MEMORY_ACCESS;
                };
                let Some(pairs) = decode_pairs(&bytes) else {
                    return status::BAD_ARGUMENT;
                };
                if !c.data().maps.contains_key(&map) {
                    return status::BAD_ARGUMENT;
                }
                let s = c.data_mut();
                s.header_writes.push((map, "set", String::new()));
                s.maps.insert(map, pairs);
                status::OK
            })?
        }
        "proxy_get_header_map_value" => linker.func_wrap(
            M,
            name,
            |mut c: C<'_>,
             map: i32,
             kptr: i32,
             klen: i32,
             ret_ptr: i32,
             ret_size: i32|
             -> Result<i32> {
                enter(&mut c, "proxy_get_header_map_value");
                let Some(key) = read_string(&mut c, kptr, klen) else {
                    return Ok(status::INVALID_MEMORY_ACCESS);
                };
                let Some(pairs) = c.data().maps.get(&map) else {
                    return Ok(status::BAD_ARGUMENT);
                };
                match find(pairs, &key).cloned() {
                    Some(value) => return_bytes(&mut c, &value, ret_ptr, ret_size),
                    None => Ok(status::NOT_FOUND),
                }
            },
        )?,
        "proxy_add_header_map_value" | "proxy_replace_header_map_value" => {
            let replace = name == "proxy_replace_header_map_value";
            let import = if replace {
                "proxy_replace_header_map_value"
            } else {
                "proxy_add_header_map_value"
            };
            linker.func_wrap(
                M,
                name,
                move |mut c: C<'_>, map: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| {
                    enter(&mut c, import);
                    let (Some(key), Some(value)) =
                        (read_string(&mut c, kptr, klen), read(&mut c, vptr, vlen))
                    else {
                        return status::INVALID_MEMORY_ACCESS;
                    };
                    let s = c.data_mut();
                    let Some(pairs) = s.maps.get_mut(&map) else {
                        return status::BAD_ARGUMENT;
                    };
                    if replace {
                        pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
                    }
                    pairs.push((key.to_ascii_lowercase(), value));
                    s.header_writes
                        .push((map, if replace { "replace" } else { "add" }, key));
                    status::OK
                },
            )?
        }
        "proxy_remove_header_map_value" => {
            linker.func_wrap(M, name, |mut c: C<'_>, map: i32, kptr: i32, klen: i32| {
                enter(&mut c, "proxy_remove_header_map_value");
                let Some(key) = read_string(&mut c, kptr, klen) else {
                    return status::INVALID_MEMORY_ACCESS;
                };
                let s = c.data_mut();
                let Some(pairs) = s.maps.get_mut(&map) else {
                    return status::BAD_ARGUMENT;
                };
                pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
                s.header_writes.push((map, "remove", key));
                status::OK
            })?
        }
        "proxy_get_buffer_bytes" => linker.func_wrap(
            M,
            name,
            |mut c: C<'_>,
             kind: i32,
             start: i32,
             max: i32,
             ret_ptr: i32,
             ret_size: i32|
             -> Result<i32> {
                enter(&mut c, "proxy_get_buffer_bytes");
                let (start, max) = (start as u32 as usize, max as u32 as usize);
                match c.data().buffer_bytes(kind, start, max) {
                    Ok(slice) => return_bytes(&mut c, &slice, ret_ptr, ret_size),
                    Err(status) => Ok(status),
                }
            },
        )?,
        "proxy_get_buffer_status" => linker.func_wrap(
            M,
            name,
            |mut c: C<'_>, kind: i32, ret_len: i32, ret_flags: i32| {
                enter(&mut c, "proxy_get_buffer_status");
                let Some(len) = c.data().buffers.get(&kind).map(Vec::len) else {
                    return status::NOT_FOUND;
                };
                if write_u32(&mut c, ret_len, len as u32) && write_u32(&mut c, ret_flags, 0) {
                    status::OK
                } else {
                    status::INVALID_MEMORY_ACCESS
                }
            },
        )?,
        "proxy_set_buffer_bytes" => linker.func_wrap(
            M,
            name,
            |mut c: C<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
                enter(&mut c, "proxy_set_buffer_bytes");
                let Some(bytes) = read(&mut c, ptr, len) else {
                    return status::INVALID_MEMORY_ACCESS;
                };
                let Some(buf) = c.data_mut().buffers.get_mut(&kind) else {
                    return status::NOT_FOUND;
                };
                let start = (start as u32 as usize).min(buf.len());
                let end = start.saturating_add(size as u32 as usize).min(buf.len());
                buf.splice(start..end, bytes);
                status::OK
            },
        )?,
        "proxy_http_call" => linker.func_wrap(M, name, http_call)?,
        "proxy_send_local_response" => linker.func_wrap(M, name, local_response)?,
        _ => return Ok(false),
    };
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
fn http_call(
    mut c: C<'_>,
    up_ptr: i32,
    up_len: i32,
    h_ptr: i32,
    h_len: i32,
    b_ptr: i32,
    b_len: i32,
    t_ptr: i32,
    t_len: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> i32 {
    enter(&mut c, "proxy_http_call");
    let (Some(cluster), Some(h), Some(body), Some(t)) = (
        read_string(&mut c, up_ptr, up_len),
        read(&mut c, h_ptr, h_len),
        read(&mut c, b_ptr, b_len),
        read(&mut c, t_ptr, t_len),
    ) else {
        return status::INVALID_MEMORY_ACCESS;
    };
    let (headers, trailers) = (decode_pairs(&h), decode_pairs(&t));
    let result = c
        .data_mut()
        .http_call(cluster, headers, body, trailers, timeout_ms as u32);
    let token = match result {
        Ok(token) => token,
        Err(status) => return status,
    };
    if write_u32(&mut c, ret_token, token) {
        status::OK
    } else {
        status::INVALID_MEMORY_ACCESS
    }
}

#[allow(clippy::too_many_arguments)]
fn local_response(
    mut c: C<'_>,
    code: i32,
    d_ptr: i32,
    d_len: i32,
    b_ptr: i32,
    b_len: i32,
    h_ptr: i32,
    h_len: i32,
    grpc_status: i32,
) -> i32 {
    enter(&mut c, "proxy_send_local_response");
    let (Some(details), Some(body), Some(h)) = (
        read_string(&mut c, d_ptr, d_len),
        read(&mut c, b_ptr, b_len),
        read(&mut c, h_ptr, h_len),
    ) else {
        return status::INVALID_MEMORY_ACCESS;
    };
    let Some(headers) = decode_pairs(&h) else {
        return status::BAD_ARGUMENT;
    };
    c.data_mut()
        .local_reply(code as u32, details, body, headers, grpc_status);
    status::OK
}
