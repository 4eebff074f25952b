//! The union filesystem, one module per concern (modelled on fs/overlayfs).
