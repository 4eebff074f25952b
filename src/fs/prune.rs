//! A bounded inode table (`max_inodes=`).
//!
//! Every name the kernel keeps a dentry for is an inode in the daemon's table
//! (460-510 bytes each: peak RSS less the 2.8 MB after mounting, over the
//! entries walked), and the kernel keeps dentries until its memory runs
//! short: a walk of 510k entries left a 250 MB daemon. Past the
//! budget, a thread asks the kernel to hand the least recently used inodes
//! back with FUSE_NOTIFY_PRUNE (Linux 6.18+): it drops its unused dentries of
//! them, evicts the inodes left without one and sends their FORGETs, so the
//! table shrinks to 7/8 of the budget. The kernel only drops what nothing
//! uses: open files, working directories, mount points and directories with
//! cached entries stay (unlike FUSE_NOTIFY_INVAL_ENTRY, which would detach
//! the mounts on a dentry). A pruned name costs one LOOKUP when it is next
//! used, as after a `drop_caches`.
//!
//! On an older kernel the first notification fails with EINVAL: the thread
//! says so in the debug log and stops, and the table grows as before.

use crate::fs::inode::InodeTable;
use fuser::Notifier;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// Node IDs per notification (8 bytes each).
const BATCH: usize = 4096;

/// Start the pruner of `table` (nothing when it is unbounded). It ends with
/// the table.
pub fn spawn(table: &Arc<InodeTable>, notifier: Arc<OnceLock<Notifier>>) -> std::io::Result<()> {
    let budget = table.budget();
    if budget == 0 {
        return Ok(());
    }
    let table = Arc::downgrade(table);
    std::thread::Builder::new().name("unionfs-prune".into()).spawn(move || run(&table, budget, &notifier))?;
    Ok(())
}

fn run(table: &Weak<InodeTable>, budget: usize, notifier: &OnceLock<Notifier>) {
    loop {
        let Some(t) = table.upgrade() else { return };
        // The timeout only lets the thread see the table go.
        if !t.wait_over_budget(Duration::from_secs(5)) {
            continue;
        }
        let Some(n) = notifier.get() else { continue };
        let want = t.len().saturating_sub(budget - budget / 8);
        let victims = t.prune_candidates(want);
        // Rest while the kernel answers with FORGETs, and while new inodes
        // replace the ones it could not drop.
        t.rest((budget / 16).max(1) as u64);
        drop(t);
        for chunk in victims.chunks(BATCH) {
            if let Err(e) = n.prune(chunk) {
                log::debug!("prune: the kernel refused FUSE_NOTIFY_PRUNE ({e}): the inode table is not bounded");
                return;
            }
        }
        log::debug!("prune: asked the kernel to hand back {} inodes", victims.len());
    }
}
