//! Integration tests: the real server on 127.0.0.1:0 and real socket.io clients.

mod helpers;
mod limits;

mod auth;
mod bad_input;
mod cluster;
mod dashboard;
mod delivery;
mod devices;
mod docs;
mod faults;
mod links;
mod mesh;
mod metrics;
mod panics;
mod process;
mod rest;
mod signaling;
mod web;
mod workers;
