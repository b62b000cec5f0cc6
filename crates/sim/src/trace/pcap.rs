//! Rates from a packet capture: packets per step, from their timestamps.
//! (Implemented in a later step.)
