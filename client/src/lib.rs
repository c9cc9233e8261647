//! The client side of private inference (built in the end-to-end issue).
