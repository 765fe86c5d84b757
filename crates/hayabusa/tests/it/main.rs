//! End-to-end tests: real servers on port 0 with temporary data directories, driven
//! over HTTP the way ChatWork clients drive them.

mod helpers;

mod accounts;
mod conventions;
mod crash;
mod messages;
mod persistence;
mod rooms;
mod sync;
