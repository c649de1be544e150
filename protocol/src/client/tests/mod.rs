//! Tests of the client session with no network at all: sessions talk to a fake server
//! built from the same codec ([`hub`]) over a deterministic in-memory network ([`net`]).

mod convergence;
mod hub;
mod net;
mod presence_tests;
mod reconnect_tests;
mod refresh_tests;
mod sync_tests;
