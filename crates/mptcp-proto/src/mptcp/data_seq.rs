//! Connection-level sequence state (being written).
