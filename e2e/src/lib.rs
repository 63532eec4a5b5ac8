//! weft-e2e
