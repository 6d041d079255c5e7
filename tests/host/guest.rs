//! Reading and writing the module's linear memory, the way a proxy does:
//! results are copied into memory the module allocates itself (through its
//! exported allocator), and pointer and size go into the caller's slots.

use super::state::{status, Pairs, State};
use wasmtime::{Caller, Extern, Memory, Result};

fn memory(caller: &mut Caller<'_, State>) -> Option<Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

/// `len` bytes at `ptr`; `None` when out of bounds.
pub fn read(caller: &mut Caller<'_, State>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let mem = memory(caller)?;
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let data = mem.data(&*caller);
    data.get(start..start.checked_add(len)?).map(<[u8]>::to_vec)
}

pub fn read_string(caller: &mut Caller<'_, State>, ptr: i32, len: i32) -> Option<String> {
    read(caller, ptr, len).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub fn write(caller: &mut Caller<'_, State>, ptr: i32, bytes: &[u8]) -> bool {
    match memory(caller) {
        Some(mem) => mem.write(&mut *caller, ptr as u32 as usize, bytes).is_ok(),
        None => false,
    }
}

pub fn write_u32(caller: &mut Caller<'_, State>, ptr: i32, value: u32) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

pub fn write_u64(caller: &mut Caller<'_, State>, ptr: i32, value: u64) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

/// Allocates `len` bytes inside the module with its own allocator.
fn allocate(caller: &mut Caller<'_, State>, len: usize) -> Result<i32> {
    let func = ["proxy_on_memory_allocate", "malloc"]
        .iter()
        .find_map(|name| caller.get_export(name).and_then(Extern::into_func))
        .ok_or_else(|| {
            wasmtime::Error::msg("module exports neither proxy_on_memory_allocate nor malloc")
        })?;
    let typed = func.typed::<i32, i32>(&*caller)?;
    typed.call(&mut *caller, len as i32)
}

/// Copies `bytes` into fresh module memory and writes pointer and size into
/// the return slots. Empty values are returned as (0, 0) without an
/// allocation, as Envoy does.
pub fn return_bytes(
    caller: &mut Caller<'_, State>,
    bytes: &[u8],
    ptr_slot: i32,
    size_slot: i32,
) -> Result<i32> {
    let ptr = if bytes.is_empty() {
        0
    } else {
        let p = allocate(caller, bytes.len())?;
        if p == 0 || !write(caller, p, bytes) {
            return Ok(status::INVALID_MEMORY_ACCESS);
        }
        p
    };
    if !write_u32(caller, ptr_slot, ptr as u32) || !write_u32(caller, size_slot, bytes.len() as u32)
    {
        return Ok(status::INVALID_MEMORY_ACCESS);
    }
    Ok(status::OK)
}

/// proxy-wasm pair serialisation: count, (key len, value len)*, then keys and
/// values each followed by a NUL.
pub fn encode_pairs(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// The inverse of [`encode_pairs`]; `None` when the bytes are malformed.
pub fn decode_pairs(bytes: &[u8]) -> Option<Pairs> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let count = word(0)?;
    let mut sizes = 4;
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let (klen, vlen) = (word(sizes)?, word(sizes + 4)?);
        sizes += 8;
        let key = bytes.get(data..data.checked_add(klen)?)?;
        data += klen + 1;
        let value = bytes.get(data..data.checked_add(vlen)?)?;
        data += vlen + 1;
        out.push((String::from_utf8_lossy(key).into_owned(), value.to_vec()));
    }
    Some(out)
}
