"""spike2loihi: SpikeGPT checkpoints to Intel Loihi 2 through Lava.

Lava-free core modules (model, reference, sequence, fixed point, emulator)
never import Lava, so the model work runs on any Python with torch.
"""
__version__ = "0.1.0"
