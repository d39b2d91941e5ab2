//! chinwag's full-screen terminal client (placeholder until the screens land).

use chinwag_client::ClientConfig;

/// Runs the full-screen client until the user quits.
pub async fn run(cfg: ClientConfig, password: Option<String>) -> std::io::Result<()> {
    let (commands, events, task) = chinwag_client::start(cfg);
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let format = chinwag_client::script::Format::Plain;
    chinwag_client::script::run(stdin, std::io::stdout(), format, password, commands, events).await?;
    let _ = task.await;
    Ok(())
}
