//! End-to-end tests: real servers on port 0 with temporary data directories, driven
//! over HTTP the way ChatWork clients drive them.

mod helpers;

mod accounts;
mod at_rest;
mod authz_matrix;
mod backup;
mod cluster;
mod consistency;
mod contacts;
mod conventions;
mod crash;
mod files;
mod input;
mod links;
mod messages;
mod nats;
mod network;
mod openapi;
mod persistence;
mod rate_limits;
mod rooms;
mod session;
mod sync;
mod tasks;
mod tokens;
mod web;
mod webhooks;
