//! The Compose loader: raw descriptor text → `Stack`. (Being written.)

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::stack::Stack;

/// Loads a descriptor into the normalised model.
pub fn load(descriptor: &Descriptor, default_project: &str) -> Result<Stack> {
    let _ = default_project;
    Err(Error::Descriptor(format!("{}: the loader is not written yet", descriptor.path.display())))
}
