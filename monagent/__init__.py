"""monagent: a server monitoring agent that tells a DingTalk group, once and clearly, when a server is in trouble."""

__version__ = "0.1.0"
