//! Test doubles for skillbridge.
pub mod model;
