//! The VMCB: its layout (APM Vol 2 Appendix B), the values of its control fields, the
//! SVM exit codes (Appendix C), and the page one lives in.

pub mod bits;
pub mod exit_code;
pub mod intercept;
mod layout;
mod page;

pub use layout::{ControlArea, SaveArea, Vmcb, VmcbSegment};
pub use page::VmcbPage;
