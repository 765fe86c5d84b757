//! End-to-end tests: real servers on port 0 with temporary data directories, driven
//! over HTTP the way ChatWork clients drive them.

mod helpers;

mod accounts;
mod authz_matrix;
mod contacts;
mod conventions;
mod crash;
mod files;
mod links;
mod messages;
mod persistence;
mod rate_limits;
mod rooms;
mod sync;
mod tasks;
