//! The pure parts of federation, where one endpoint serves many MCP services: federated names
//! ([`names`]), federated resource URIs ([`uris`]), what a result says about caching it
//! ([`caching`]), what a merged listen stream carries ([`notifications`]), and the tasks
//! extension's messages across services ([`tasks`]), and a 2026-07-28 backend's
//! `input_required` rounds as a 2025-11-25 client's server requests ([`asks`]). The edge's
//! `federation` module does the I/O around them.

pub mod asks;
pub mod caching;
pub mod names;
pub mod notifications;
pub mod tasks;
pub mod uris;
