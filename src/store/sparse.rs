//! GNU sparse members. Old GNU ones (typeflag `S`, `tar --sparse
//! --format=gnu`) are expanded by the tar reader, holes read as zeros, which
//! the unpacker skips. PAX format 1.0 ones (`tar --sparse --format=posix`)
//! are ordinary members whose data starts with the map; their real name and
//! size are PAX records (`GNU.sparse.name`, `GNU.sparse.realsize`). The older
//! PAX formats 0.0 and 0.1 are refused.

use crate::store::error::{err, Error, Result};
use crate::store::limits::EXT_HEADER_LIMIT;
use std::io::Read;

/// A PAX 1.0 sparse member's real name and size.
#[derive(Debug, PartialEq)]
pub struct PaxSparse {
    pub name: Vec<u8>,
    pub real_size: u64,
}

fn number(v: &[u8], what: &str) -> Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error(format!("GNU sparse member: bad {what} {:?}", String::from_utf8_lossy(v))))
}

/// From a member's PAX records: None when it is not a sparse member.
pub fn pax_sparse(records: &[(Vec<u8>, Vec<u8>)]) -> Result<Option<PaxSparse>> {
    let get = |k: &[u8]| records.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_slice());
    if !records.iter().any(|(k, _)| k.starts_with(b"GNU.sparse.")) {
        return Ok(None);
    }
    let (major, minor) = (get(b"GNU.sparse.major"), get(b"GNU.sparse.minor"));
    if major != Some(b"1") || minor != Some(b"0") {
        return err(
            "GNU sparse member in PAX format 0.x is not supported (GNU tar --sparse-version=1.0 or --format=gnu works)",
        );
    }
    let name = get(b"GNU.sparse.name").ok_or_else(|| Error("GNU sparse member without GNU.sparse.name".into()))?;
    let size =
        get(b"GNU.sparse.realsize").ok_or_else(|| Error("GNU sparse member without GNU.sparse.realsize".into()))?;
    Ok(Some(PaxSparse { name: name.to_vec(), real_size: number(size, "size")? }))
}

/// Read the map that starts a PAX 1.0 sparse member's data (decimal numbers
/// one per line: the count, then offset and length of each data segment,
/// padded to a 512-byte block). Segments must be in order and inside the file.
pub fn read_map<R: Read>(r: &mut R, real_size: u64) -> Result<Vec<(u64, u64)>> {
    let mut buf = Vec::new();
    let mut block = [0u8; 512];
    loop {
        if buf.len() as u64 >= EXT_HEADER_LIMIT {
            return err("GNU sparse map larger than 1 MiB");
        }
        r.read_exact(&mut block).map_err(|_| Error("GNU sparse map: truncated".into()))?;
        buf.extend_from_slice(&block);
        let lines: Vec<&[u8]> = buf.split(|b| *b == b'\n').collect();
        // The last piece is not terminated yet.
        let done = &lines[..lines.len() - 1];
        let Some(count) = done.first() else { continue };
        let count = number(count, "segment count")?;
        if count > EXT_HEADER_LIMIT {
            return err("GNU sparse map: too many segments");
        }
        if (done.len() as u64) < 1 + 2 * count {
            continue;
        }
        let mut map = Vec::new();
        let mut end = 0u64;
        for pair in done[1..1 + 2 * count as usize].chunks(2) {
            let (off, len) = (number(pair[0], "offset")?, number(pair[1], "length")?);
            let stop = off.checked_add(len).filter(|s| off >= end && *s <= real_size);
            let Some(stop) = stop else {
                return err("GNU sparse map: segments overlap or lie outside the file");
            };
            end = stop;
            map.push((off, len));
        }
        return Ok(map);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_1_0_map() {
        let mut data = b"2\n0\n4096\n104857600\n4\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"rest");
        let mut r = &data[..];
        assert_eq!(read_map(&mut r, 104_857_604).unwrap(), vec![(0, 4096), (104_857_600, 4)]);
        assert_eq!(r, b"rest");
        let mut bad = b"1\n10\n20\n".to_vec();
        bad.resize(512, 0);
        assert!(read_map(&mut &bad[..], 25).is_err());
        let rec = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
        assert!(pax_sparse(&[rec("GNU.sparse.size", "5")]).is_err());
        assert_eq!(pax_sparse(&[rec("mtime", "1")]).unwrap(), None);
    }
}
