//! weft-broker
