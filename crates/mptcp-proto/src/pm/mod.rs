//! Path manager (being written).
