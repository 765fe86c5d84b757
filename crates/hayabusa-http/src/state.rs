//! Shared state of the HTTP layer.

use hayabusa_app::App;

/// What every handler gets.
pub struct AppState {
    /// The application.
    pub app: App,
}
