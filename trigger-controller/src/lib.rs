//! weft-controller
