//! soledad-client (work in progress).
