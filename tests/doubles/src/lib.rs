//! Test doubles for skillbridge.
