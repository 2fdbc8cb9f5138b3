//! Directories: where users come from besides the built-in local one (LDAP,
//! Active Directory), as `[[directory]]` plugins asked in config order.
//!
//! [`Directories`] holds the loaded plugins behind a lock so that a reload
//! (SIGHUP) can swap them while requests keep using the set they started
//! with. Never logs a password.

use std::sync::{Arc, RwLock};

use crate::plugin_host::PluginHandle;

/// The loaded `[[directory]]` plugins, in config order; swapped whole on
/// reload.
#[derive(Default)]
pub struct Directories {
    loaded: RwLock<Arc<Vec<PluginHandle>>>,
}

impl std::fmt::Debug for Directories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.snapshot().iter().map(|p| p.name().to_string()))
            .finish()
    }
}

impl Directories {
    /// The set `plugins`, in config order.
    pub fn new(plugins: Vec<PluginHandle>) -> Directories {
        Directories {
            loaded: RwLock::new(Arc::new(plugins)),
        }
    }

    /// The current plugins. Calls already running keep the set they took.
    pub fn snapshot(&self) -> Arc<Vec<PluginHandle>> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the whole set (on reload). The old plugins are shut down
    /// once their last running call ends.
    pub fn replace(&self, plugins: Vec<PluginHandle>) {
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(plugins);
    }
}
