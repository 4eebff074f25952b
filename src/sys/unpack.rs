//! Syscall wrappers used by the image store (safe tar apply).
