"""Our Lava Processes and their ProcessModels, alone in this folder.

Lava's compiler imports every `.py` file in the folder of a custom Process's module,
once per process instance, when it looks for ProcessModels (DESIGN.md "Lava runtime
facts"). So this folder holds nothing but side-effect-free Process/ProcessModel
modules: `processes` (TokenLIF, HostBlock) and `onchip` (FxpLayerNorm, FxpSigmoid,
TokenShiftCat).
"""
