//! The admin HTTP endpoint: skills, health, readiness, metrics, sessions and recent calls.
