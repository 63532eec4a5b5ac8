//! weft-sources
