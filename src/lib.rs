pub use gridworld;
