//! `reconcile`: what must happen for what exists (`Observed`) to become what the compose file
//! asks for, as a [`Plan`]. Pure: no host access, so every scenario is a unit test.
