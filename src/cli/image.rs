//! `unionctl image ...` commands.
