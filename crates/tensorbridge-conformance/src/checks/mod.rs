//! The op groups; each public `check_*` runs one group for a backend and fails with every broken
//! case listed.

pub(crate) mod bools;
pub(crate) mod cast;
pub(crate) mod creation;
pub(crate) mod elementwise;
pub(crate) mod errors;
pub(crate) mod exact;
pub(crate) mod matmul;
pub(crate) mod pinned;
pub(crate) mod reduce;
pub(crate) mod shapes;
pub(crate) mod transfer;
pub(crate) mod views;
