//! The server side of private inference (built in the end-to-end issue).
