//! The `unionfs` command line (fuse-overlayfs compatible).
