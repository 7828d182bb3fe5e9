//! One component per panel of the page. Each reads the store
//! (`state::use_page`) and takes no arguments; the shell (`lib.rs`) only
//! places them.

pub mod camera;
pub mod classes;
pub mod classroom;
pub mod compare;
pub mod draw;
pub mod faithfulness;
pub mod legend;
pub mod picker;
pub mod run;
pub mod settings;
pub mod sharing;
pub mod window;
