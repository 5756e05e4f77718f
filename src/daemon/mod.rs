//! `tmctl serve`: the daemon.
