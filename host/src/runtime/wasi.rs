//! The WASI context a plugin gets: nothing. No preopened directories, no environment or
//! arguments, no sockets; stdout and stderr are captured within a budget.

use super::*;

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StepState {}
