"""The agent protocol (docs/agent-protocol.md): its grammar, the model's server, the client."""
