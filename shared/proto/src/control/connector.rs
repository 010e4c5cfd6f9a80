//! The connector's side of the control protocol: send `Hello`, await `Welcome` or `Refused`,
//! then receive whatever the edge sends later.

use super::{peer_understands, we_announced, Control, ControlError, Hello, Received, Welcome};
use crate::frame::{FrameBuffer, FrameError};

/// What [`ConnectorControl`] asks of its shell, or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorOutput {
    /// Write this message on the control stream.
    Send(Control),
    /// The edge welcomed us: the tunnel is up, on these terms.
    Welcomed(Welcome),
    /// The edge refused us (and closes the tunnel); the reason is for the operator.
    Refused(String),
    /// A message of an optional type we announced, for the connector to act on.
    Message(Control),
    /// A message of a type this build does not know (a newer edge's), ignored: log it.
    Ignored(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `Hello` not sent yet.
    Idle,
    /// `Hello` sent; the edge has not answered.
    AwaitingWelcome,
    /// Welcomed: the tunnel is up.
    Established,
    /// Refused, or broken by an error: no more input is taken.
    Closed,
}

impl State {
    fn when(self) -> &'static str {
        match self {
            State::Idle => "before Hello",
            State::AwaitingWelcome => "before Welcome",
            State::Established => "after Welcome",
            State::Closed => "after the conversation ended",
        }
    }
}

/// The connector's control protocol, sans I/O: [`start`](Self::start) it, feed it what the
/// control stream delivers ([`handle_bytes`](Self::handle_bytes), and
/// [`handle_end`](Self::handle_end) when it ends), and do what the outputs say.
#[derive(Debug)]
pub struct ConnectorControl {
    state: State,
    hello: Hello,
    /// What the edge announced in its `Welcome`.
    peer_capabilities: Vec<String>,
    frames: FrameBuffer,
}

impl ConnectorControl {
    /// A machine that will introduce the connector with `hello`; `hello.capabilities` is what
    /// it announces, and the optional message types it accepts.
    pub fn new(hello: Hello) -> Self {
        ConnectorControl {
            state: State::Idle,
            hello,
            peer_capabilities: Vec::new(),
            frames: FrameBuffer::default(),
        }
    }

    /// Begins the conversation: the `Hello` to send.
    pub fn start(&mut self) -> Result<Vec<ConnectorOutput>, ControlError> {
        if self.state != State::Idle {
            return Err(ControlError::State {
                action: "send Hello",
                when: self.state.when(),
            });
        }
        self.state = State::AwaitingWelcome;
        Ok(vec![ConnectorOutput::Send(Control::Hello(
            self.hello.clone(),
        ))])
    }

    /// Whether the edge has welcomed us.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// The optional message types the edge announced.
    pub fn peer_capabilities(&self) -> &[String] {
        &self.peer_capabilities
    }

    /// Takes bytes as they arrived on the control stream (any split), and returns what they
    /// call for.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<Vec<ConnectorOutput>, ControlError> {
        if self.state == State::Closed {
            return Err(ControlError::Closed);
        }
        self.frames.push(bytes);
        let mut out = Vec::new();
        loop {
            let frame = match self.frames.next_frame::<Received>() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(out),
                Err(e) => return Err(self.fail(e.into())),
            };
            out.extend(self.handle(frame)?);
            if self.state == State::Closed {
                // Nothing the edge sends after `Refused` counts.
                return Ok(out);
            }
        }
    }

    /// Takes one decoded message.
    pub fn handle(&mut self, msg: Received) -> Result<Vec<ConnectorOutput>, ControlError> {
        let msg = match msg {
            Received::Unknown(kind) if self.state != State::Closed => {
                return Ok(vec![ConnectorOutput::Ignored(kind)]);
            }
            Received::Unknown(_) => return Err(ControlError::Closed),
            Received::Known(msg) => msg,
        };
        match (self.state, msg) {
            (State::Closed, _) => Err(ControlError::Closed),
            (State::AwaitingWelcome, Control::Welcome(welcome)) => {
                self.state = State::Established;
                self.peer_capabilities = welcome.capabilities.clone();
                Ok(vec![ConnectorOutput::Welcomed(welcome)])
            }
            (State::AwaitingWelcome, Control::Refused(refused)) => {
                self.state = State::Closed;
                Ok(vec![ConnectorOutput::Refused(refused.reason)])
            }
            (State::Established, msg) if !msg.is_base() => {
                if we_announced(&msg, &self.hello.capabilities) {
                    Ok(vec![ConnectorOutput::Message(msg)])
                } else {
                    Err(self.fail(ControlError::NotAnnounced(msg.kind())))
                }
            }
            (state, msg) => Err(self.fail(ControlError::Unexpected {
                kind: msg.kind(),
                when: state.when(),
            })),
        }
    }

    /// The edge ended the control stream (FIN).
    pub fn handle_end(&mut self) -> Result<Vec<ConnectorOutput>, ControlError> {
        match self.state {
            State::Closed => Ok(Vec::new()),
            _ if !self.frames.is_empty() => Err(self.fail(FrameError::Truncated.into())),
            State::Idle | State::AwaitingWelcome => {
                Err(self.fail(ControlError::Ended("before Welcome")))
            }
            // The edge has nothing more to say; the tunnel lives on.
            State::Established => Ok(Vec::new()),
        }
    }

    /// Sends a message of an optional type, if the edge announced it.
    pub fn send(&mut self, msg: Control) -> Result<Vec<ConnectorOutput>, ControlError> {
        if self.state != State::Established || msg.is_base() {
            return Err(ControlError::State {
                action: "send this message",
                when: self.state.when(),
            });
        }
        if !peer_understands(&msg, &self.peer_capabilities) {
            return Err(ControlError::PeerDidNotAnnounce(msg.kind()));
        }
        Ok(vec![ConnectorOutput::Send(msg)])
    }

    fn fail(&mut self, e: ControlError) -> ControlError {
        self.state = State::Closed;
        e
    }
}

#[cfg(test)]
mod tests;
