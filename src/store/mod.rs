//! The content-addressed image and layer store used by `unionctl`.
