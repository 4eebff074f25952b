//! unionfs patch: FUSE over io_uring (Linux 6.14+, when the fuse module's
//! `enable_uring` parameter is set).
//!
//! The kernel keeps one request queue per possible CPU and hands a request
//! to the queue of the CPU its caller runs on. Each queue here is served by
//! threads pinned to that CPU, each with its own io_uring and one ring entry
//! (a header buffer and a payload buffer registered with the kernel): waking
//! the thread that serves a request, and waking the caller with the answer,
//! then stay on one CPU. With `/dev/fuse` reads the woken thread usually runs
//! on the other CPU, and on a virtual machine waking an idle CPU costs more
//! than the request itself.
//!
//! FORGET, INTERRUPT and notifications still go through `/dev/fuse`, so the
//! classic threads keep running. The kernel holds every request until each
//! queue has an entry registered; if a registration fails it falls back to
//! `/dev/fuse` for good.

use std::fmt;
use std::io;
use std::io::IoSlice;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::IoUring;
use io_uring::cqueue;
use io_uring::opcode;
use io_uring::squeue;
use io_uring::types;
use log::debug;
use log::error;
use log::warn;
use parking_lot::Mutex;

use crate::Filesystem;
use crate::channel::ChannelSender;
use crate::ll::Operation;
use crate::reply::ReplyEmpty;
use crate::request::RequestWithSender;
use crate::session::SessionEventLoop;

/// `struct fuse_uring_req_header`: the request or answer header (128 bytes),
/// the operation's own header (128), `struct fuse_uring_ent_in_out` (32).
const HEADER_SIZE: usize = 288;
const OP_IN: usize = 128;
const OP_IN_MAX: usize = 128;
const ENT_IN_OUT: usize = 256;
/// `struct fuse_in_header` and `struct fuse_out_header`.
const IN_HEADER: usize = 40;
const OUT_HEADER: usize = 16;
/// `enum fuse_uring_cmd`.
const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;
/// Threads (each with one entry) per CPU queue: while one is busy with a
/// slow request (a big copy-up, an fsync) the other serves the CPU.
const THREADS_PER_QUEUE: usize = 2;
/// `FUSE_MIN_READ_BUFFER`.
const MIN_PAYLOAD: usize = 8192;

/// The kernel's queue count: `num_possible_cpus()`. Only a possible-CPU set
/// numbered 0..n is accepted (a queue is picked by CPU number).
fn possible_cpus() -> Option<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
    let s = s.trim();
    let last = match s.split_once('-') {
        Some(("0", last)) => last.parse::<usize>().ok()?,
        None if s == "0" => 0,
        _ => return None,
    };
    Some(last + 1)
}

/// One thread's ring, made before the kernel is told we use io_uring (so a
/// failure here keeps `/dev/fuse`).
pub(crate) struct QueueRing {
    qid: u16,
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
}

impl fmt::Debug for QueueRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueRing({})", self.qid)
    }
}

/// The rings for every queue, or why not.
pub(crate) fn prepare() -> io::Result<Vec<QueueRing>> {
    let n = possible_cpus().ok_or_else(|| io::Error::other("cannot read the possible CPUs"))?;
    let n = u16::try_from(n).map_err(|_| io::Error::other("too many CPUs"))?;
    let mut rings = Vec::with_capacity(usize::from(n) * THREADS_PER_QUEUE);
    for qid in 0..n {
        for _ in 0..THREADS_PER_QUEUE {
            rings.push(QueueRing {
                qid,
                ring: IoUring::<squeue::Entry128, cqueue::Entry>::builder().build(4)?,
            });
        }
    }
    Ok(rings)
}

/// The payload buffer the kernel requires: `max(FUSE_MIN_READ_BUFFER,
/// max_write, max_pages * page size)`.
pub(crate) fn payload_size(max_write: u32, max_pages: u16) -> usize {
    let page = page_size::get();
    MIN_PAYLOAD.max(max_write as usize).max(usize::from(max_pages) * page)
}

/// The answer of the request in a ring entry: written by the reply (through
/// `RingSender`), committed by the queue thread.
struct RingOut {
    header: [u8; OUT_HEADER],
    /// The entry's payload buffer, registered with the kernel: the request's
    /// arguments come in it, the answer's go out in it.
    payload: Box<[u8]>,
    len: usize,
    replied: bool,
}

/// Where a reply to a request taken from a ring goes.
#[derive(Clone)]
pub(crate) struct RingSender {
    out: Arc<Mutex<RingOut>>,
    /// `/dev/fuse`, for the passthrough ioctls.
    pub(crate) ch: ChannelSender,
}

impl fmt::Debug for RingSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RingSender")
    }
}

impl RingSender {
    /// Keep the answer (`fuse_out_header` then its arguments) for the commit.
    pub(crate) fn send(&self, data: &[IoSlice<'_>]) -> io::Result<()> {
        let mut out = self.out.lock();
        let out = &mut *out;
        let total: usize = data.iter().map(|s| s.len()).sum();
        if total < OUT_HEADER || total - OUT_HEADER > out.payload.len() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // `at`: where the next slice starts in the answer (header, then payload).
        let mut at = 0;
        for s in data {
            let mut s: &[u8] = s;
            if at < OUT_HEADER {
                let n = s.len().min(OUT_HEADER - at);
                out.header[at..at + n].copy_from_slice(&s[..n]);
                s = &s[n..];
                at += n;
            }
            let p = at - OUT_HEADER.min(at);
            out.payload[p..p + s.len()].copy_from_slice(s);
            at += s.len();
        }
        out.len = total - OUT_HEADER;
        out.replied = true;
        Ok(())
    }
}

fn cmd_entry(fd: i32, op: u32, commit_id: u64, qid: u16, iov: Option<u64>) -> squeue::Entry128 {
    // struct fuse_uring_cmd_req: flags, commit_id, qid.
    let mut cmd = [0u8; 80];
    cmd[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    cmd[16..18].copy_from_slice(&qid.to_ne_bytes());
    let mut b = opcode::UringCmd80::new(types::Fd(fd), op).cmd(cmd);
    if let Some(addr) = iov {
        b = b.addr(Some(addr));
    }
    let e = b.build();
    if iov.is_none() {
        return e;
    }
    // REGISTER also needs sqe->len = 2 (the header and payload iovecs),
    // which the builder has no setter for. SAFETY: Entry128 is repr(C): a
    // 64-byte io_uring_sqe (len is the u32 at offset 24) and 64 more bytes.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(e) };
    raw[24..28].copy_from_slice(&2u32.to_ne_bytes());
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(v)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(v)
}

/// Submit what is queued and take the next completion. With a spin time
/// (`spin=`), keep yielding the CPU for up to that long first: a syscall's
/// return runs the io_uring task work that posts a request, so a caller's
/// next request needs no wake-up of a sleeping thread (and its caller, on
/// this CPU, runs meanwhile).
fn next_completion(ring: &mut IoUring<squeue::Entry128, cqueue::Entry>, spin: std::time::Duration) -> io::Result<cqueue::Entry> {
    // Ok(false): interrupted, ask again.
    let done = |r: io::Result<usize>| match r {
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(false),
        Err(e) => Err(e),
        Ok(_) => Ok(true),
    };
    if !spin.is_zero() {
        while !done(ring.submit())? {}
        let start = std::time::Instant::now();
        while start.elapsed() < spin {
            if let Some(c) = ring.completion().next() {
                return Ok(c);
            }
            let _ = nix::sched::sched_yield();
        }
    }
    loop {
        if done(ring.submit_and_wait(1))? {
            if let Some(c) = ring.completion().next() {
                return Ok(c);
            }
        }
    }
}

/// Serve one ring entry of queue `q.qid` until the session ends. Returns
/// Ok when the kernel ends the ring (unmount) or declines it (it then uses
/// `/dev/fuse`).
pub(crate) fn serve<FS: Filesystem>(
    q: QueueRing,
    se: SessionEventLoop<FS>,
    payload_size: usize,
) -> io::Result<()> {
    let qid = q.qid;
    let mut cpus = nix::sched::CpuSet::new();
    if cpus.set(usize::from(qid)).is_ok() {
        if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus) {
            debug!("ring {qid}: not pinned to its CPU: {e}");
        }
    }
    let fd = se.ch.as_fd().as_raw_fd();
    // The header buffer is written by the kernel and read by us only while
    // the entry is ours (between a completion and the next commit).
    // Declared before the ring, so dropped after it (the ring's drop makes
    // the kernel let go of them).
    let mut header = vec![0u8; HEADER_SIZE].into_boxed_slice();
    let header_ptr = header.as_mut_ptr();
    let out = Arc::new(Mutex::new(RingOut {
        header: [0; OUT_HEADER],
        payload: vec![0u8; payload_size].into_boxed_slice(),
        len: 0,
        replied: false,
    }));
    let payload_ptr = out.lock().payload.as_mut_ptr();
    let iov = Box::new([
        libc::iovec { iov_base: header_ptr.cast(), iov_len: HEADER_SIZE },
        libc::iovec { iov_base: payload_ptr.cast(), iov_len: payload_size },
    ]);
    let sender = RingSender { out: out.clone(), ch: se.ch.sender() };
    let mut req_buf: Vec<u8> = Vec::with_capacity(payload_size + IN_HEADER + OP_IN_MAX);
    let mut ring = q.ring;
    let spin = crate::channel::receive_spin();
    let mut next = cmd_entry(fd, CMD_REGISTER, 0, qid, Some(iov.as_ptr() as u64));
    loop {
        // SAFETY: the buffers the entry points to (header, payload, iov)
        // live until this function returns, after the kernel let go.
        if unsafe { ring.submission().push(&next) }.is_err() {
            return Err(io::Error::other("io_uring submission queue full"));
        }
        let cqe = next_completion(&mut ring, spin)?;
        let res = cqe.result();
        if res < 0 {
            return match -res {
                libc::ENOTCONN | libc::ECONNABORTED | libc::ENODEV | libc::ECANCELED => Ok(()),
                e => {
                    warn!("ring {qid}: {}", io::Error::from_raw_os_error(e));
                    Ok(())
                }
            };
        }
        // The kernel wrote a request into the header and payload.
        // SAFETY: see above; the entry is ours until the commit.
        let head: &[u8] = unsafe { std::slice::from_raw_parts(header_ptr, HEADER_SIZE) };
        let in_len = u32_at(head, 0) as usize;
        let unique = u64_at(head, 8);
        let commit_id = u64_at(head, ENT_IN_OUT + 8);
        let payload_len = u32_at(head, ENT_IN_OUT + 16) as usize;
        let op_len = in_len.checked_sub(IN_HEADER + payload_len).filter(|n| *n <= OP_IN_MAX);
        {
            let mut o = out.lock();
            o.replied = false;
            req_buf.clear();
            if let Some(op_len) = op_len.filter(|_| payload_len <= o.payload.len()) {
                req_buf.extend_from_slice(&head[..IN_HEADER]);
                req_buf.extend_from_slice(&head[OP_IN..OP_IN + op_len]);
                req_buf.extend_from_slice(&o.payload[..payload_len]);
            }
        }
        match RequestWithSender::new_ring(sender.clone(), &req_buf) {
            Some(req) => {
                if let Ok(Operation::Destroy(_)) = req.request.operation() {
                    req.reply::<ReplyEmpty>().ok();
                } else {
                    req.dispatch(&se);
                }
            }
            None => error!("ring {qid}: a request that does not parse (length {in_len}, payload {payload_len})"),
        }
        let (len, head_out) = {
            let mut o = out.lock();
            if !o.replied {
                // Answer it all the same (EIO), or the entry stays taken.
                error!("ring {qid}: request {unique} got no answer");
                o.header[..4].copy_from_slice(&(OUT_HEADER as u32).to_ne_bytes());
                o.header[4..8].copy_from_slice(&(-libc::EIO).to_ne_bytes());
                o.header[8..16].copy_from_slice(&unique.to_ne_bytes());
                o.len = 0;
            }
            (o.len, o.header)
        };
        // SAFETY: the entry is still ours; the kernel reads it at the commit.
        let head: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(header_ptr, HEADER_SIZE) };
        head[..OUT_HEADER].copy_from_slice(&head_out);
        let ent = &mut head[ENT_IN_OUT..];
        ent.fill(0);
        ent[8..16].copy_from_slice(&commit_id.to_ne_bytes());
        ent[16..20].copy_from_slice(&(len as u32).to_ne_bytes());
        next = cmd_entry(fd, CMD_COMMIT_AND_FETCH, commit_id, qid, None);
    }
}
