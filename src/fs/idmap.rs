//! Owner presentation: `uidmapping=`/`gidmapping=` (ids stored on disk are
//! shown shifted, as podman's `--uidmap` expects), `squash_to_*`.
//!
//! A mapping `INSIDE:OUTSIDE:LEN` shows the stored id `INSIDE + n` as
//! `OUTSIDE + n`; ids written through the mount are shifted back. Ids outside
//! every range show as the overflow id 65534 and cannot be written.

use crate::fs::options::{IdMap, Options};

pub const OVERFLOW_ID: u32 = 65534;

#[derive(Clone, Debug, Default)]
pub struct IdMapper {
    uid_map: Vec<IdMap>,
    gid_map: Vec<IdMap>,
    squash_uid: Option<u32>,
    squash_gid: Option<u32>,
}

fn shift(map: &[IdMap], id: u32, to_outside: bool) -> Option<u32> {
    if map.is_empty() {
        return Some(id);
    }
    map.iter().find_map(|m| {
        let (from, to) = if to_outside { (m.inside, m.outside) } else { (m.outside, m.inside) };
        (id >= from && id - from < m.len).then(|| to + (id - from))
    })
}

impl IdMapper {
    pub fn new(o: &Options) -> IdMapper {
        IdMapper {
            uid_map: o.uid_map.clone(),
            gid_map: o.gid_map.clone(),
            squash_uid: o.squash_to_uid,
            squash_gid: o.squash_to_gid,
        }
    }

    /// Nothing to translate (the common case: skip all work).
    pub fn is_identity(&self) -> bool {
        self.uid_map.is_empty() && self.gid_map.is_empty() && self.squash_uid.is_none() && self.squash_gid.is_none()
    }

    /// Stored ids -> ids shown through the mount.
    pub fn shown(&self, uid: u32, gid: u32) -> (u32, u32) {
        let u = self.squash_uid.unwrap_or_else(|| shift(&self.uid_map, uid, true).unwrap_or(OVERFLOW_ID));
        let g = self.squash_gid.unwrap_or_else(|| shift(&self.gid_map, gid, true).unwrap_or(OVERFLOW_ID));
        (u, g)
    }

    /// An id given through the mount -> the id to store (None: not mappable).
    pub fn stored_uid(&self, uid: u32) -> Option<u32> {
        shift(&self.uid_map, uid, false)
    }

    pub fn stored_gid(&self, gid: u32) -> Option<u32> {
        shift(&self.gid_map, gid, false)
    }

    /// The owner stored for an object made by `uid`: a caller outside the
    /// mapping (host root making files in a container's root) makes them as
    /// the mapping's first id (the container's root).
    pub fn creator_uid(&self, uid: u32) -> u32 {
        self.stored_uid(uid).unwrap_or_else(|| self.uid_map.first().map_or(uid, |m| m.inside))
    }

    pub fn creator_gid(&self, gid: u32) -> u32 {
        self.stored_gid(gid).unwrap_or_else(|| self.gid_map.first().map_or(gid, |m| m.inside))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_style_mapping_round_trips() {
        let mut o = Options::default();
        o.apply("uidmapping=:0:100000:65536,gidmapping=0:200000:1000").unwrap();
        let m = IdMapper::new(&o);
        assert_eq!(m.shown(0, 0), (100000, 200000));
        assert_eq!(m.shown(1000, 999), (101000, 200999));
        assert_eq!(m.shown(70000, 1000), (OVERFLOW_ID, OVERFLOW_ID));
        assert_eq!(m.stored_uid(101000), Some(1000));
        assert_eq!(m.stored_uid(5), None);
        assert_eq!(m.creator_uid(0), 0);
        assert_eq!(m.creator_uid(100007), 7);
        assert!(!m.is_identity());
    }

    #[test]
    fn squash_and_identity() {
        let mut o = Options::default();
        assert!(IdMapper::new(&o).is_identity());
        o.apply("squash_to_root").unwrap();
        assert_eq!(IdMapper::new(&o).shown(1000, 1000), (0, 0));
        let mut o = Options::default();
        o.apply("squash_to_uid=7").unwrap();
        assert_eq!(IdMapper::new(&o).shown(1000, 1000), (7, 1000));
    }
}
