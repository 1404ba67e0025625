//! The simulator: plays the storefront, the payment system and the warehouse against the saga.
//! (Being built; see issue 4.)
