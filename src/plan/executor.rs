//! Runs a plan through a host: every step once the steps it follows succeeded, as many at
//! once as the edges allow; after a failure nothing new starts, and what this run created is
//! undone in reverse order.
