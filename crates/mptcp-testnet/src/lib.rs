//! What the tests that run real networks share, whichever crate they belong to:
//! namespace plumbing ([`netns`]) and seeded byte streams checked end to end
//! ([`stream`]). The topologies themselves stay with the tests that build them.

pub mod netns;
pub mod stream;
