//! The pure parts of federation, where one endpoint serves many MCP services: federated names
//! ([`names`]), federated resource URIs ([`uris`]), what a result says about caching it
//! ([`caching`]), and what a merged listen stream carries ([`notifications`]). The edge's
//! `federation` module does the I/O around them.

pub mod caching;
pub mod names;
pub mod notifications;
pub mod uris;
