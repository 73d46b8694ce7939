"""The kernel-mask protocol shared by the masked and the soft-mask layers.

:class:`KernelMaskMixin` sits between a prunable layer class and the Keras layer
it extends (``class MaskedDense(MaskedLayerMixin, keras.layers.Dense)``, with
``MaskedLayerMixin`` a subclass of ``KernelMaskMixin``). It owns what both kinds
of layer do the same way:

* the raw kernel: the parent's ``build`` stores it as ``self._kernel`` (Dense and
  Conv do so already; DepthwiseConv assigns ``self.kernel``, which the setter
  here redirects), and :attr:`~KernelMaskMixin.raw_kernel` exposes it;
* the ``kernel`` property, which every parent ``call`` reads: it returns the
  effective kernel that the subclass computes from the raw one in
  ``_effective_kernel`` (the raw kernel itself while the parent's ``build`` runs,
  before the mask variables exist);
* the refusals of LoRA (``lora_rank``, ``enable_lora``) and of ``quantize``, whose
  messages name the class;
* ``save_own_variables``/``load_own_variables`` in a fixed order: kernel, bias if
  used, then the subclass's mask variables (``_mask_variables``); a store holding
  another number of entries is a ``ValueError`` naming the layer.

A subclass adds its mask variables in ``build`` after ``super().build``, and
defines ``_mask_variables``, ``_mask_ready`` and ``_effective_kernel``.

Example (a layer whose effective kernel is the raw kernel times 2):

>>> import keras
>>> from keras import ops
>>> class Doubled(KernelMaskMixin, keras.layers.Dense):
...     def build(self, input_shape):
...         super().build(input_shape)
...         self.scale = self.add_weight(
...             name="scale", shape=(), initializer="ones", trainable=False
...         )
...     def _mask_variables(self):
...         return [self.scale]
...     def _mask_ready(self):
...         return getattr(self, "scale", None) is not None
...     def _effective_kernel(self, raw):
...         return ops.multiply(raw, 2.0)
>>> layer = Doubled(2)
>>> layer.build((None, 3))
>>> [w.name for w in layer.weights]
['kernel', 'bias', 'scale']
"""

from __future__ import annotations

from keras import ops

#: The package name under which the layers are registered for serialization.
PACKAGE = "keras_lottery"


class KernelMaskMixin:
    """Base of the prunable layers: a raw kernel plus mask variables over it.

    See the module docstring for the protocol. The class attributes below hold
    the messages of the refusals (``{cls}`` is replaced by the class name), and
    the description of the saved variables used in the loading error.

    Example:

    >>> from keras_lottery.layers import MaskedDense
    >>> layer = MaskedDense(2)
    >>> layer.build((None, 3))
    >>> isinstance(layer, KernelMaskMixin)
    True
    >>> tuple(layer.raw_kernel.shape)
    (3, 2)
    """

    #: ``ValueError`` message for a ``lora_rank`` constructor argument.
    _lora_rank_refusal = "{cls} does not support `lora_rank`."
    #: ``NotImplementedError`` message of ``enable_lora``.
    _lora_refusal = "{cls} does not support LoRA."
    #: ``NotImplementedError`` message of ``quantize``.
    _quantize_refusal = "{cls} cannot be quantized."
    #: What the saved variables are, for the loading error.
    _saved_contents = "(kernel, bias if used, masks)"

    def __init__(self, *args, **kwargs):
        if kwargs.get("lora_rank"):
            raise ValueError(self._lora_rank_refusal.format(cls=type(self).__name__))
        super().__init__(*args, **kwargs)

    # ----------------------------------------------------------- subclass hooks

    def _mask_variables(self) -> list:
        """The subclass's own variables, in saving order (after kernel, bias)."""
        raise NotImplementedError

    def _mask_ready(self) -> bool:
        """False while the parent's ``build`` runs (no mask variables yet)."""
        raise NotImplementedError

    def _effective_kernel(self, raw):
        """The kernel the forward pass uses, computed from the raw kernel tensor."""
        raise NotImplementedError

    def _load_hint(self) -> str:
        """Appended to the loading error (empty: nothing appended)."""
        return ""

    # ------------------------------------------------------------------ kernel

    @property
    def kernel(self):
        if not self.built and getattr(self, "_kernel", None) is None:
            raise AttributeError("You must build the layer before accessing `kernel`.")
        kernel = ops.convert_to_tensor(self._kernel)
        if not self._mask_ready():  # during the parent's build
            return kernel
        return self._effective_kernel(kernel)

    @kernel.setter
    def kernel(self, value):
        # DepthwiseConv's build does `self.kernel = self.add_weight(...)`.
        self._kernel = value

    def __getattr__(self, name):
        # Python calls __getattr__ when a property raises AttributeError; on the
        # PyTorch backend torch.nn.Module.__getattr__ would then replace the
        # property's message with "object has no attribute 'kernel'".
        if name == "kernel":
            return KernelMaskMixin.kernel.fget(self)
        parent = getattr(super(), "__getattr__", None)
        if parent is None:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}"
            )
        return parent(name)

    @property
    def raw_kernel(self):
        """The stored kernel variable, without the mask applied.

        Example:

        >>> from keras_lottery.layers import MaskedDense
        >>> layer = MaskedDense(2)
        >>> layer.build((None, 3))
        >>> layer.raw_kernel is layer.weights[0]
        True
        """
        return self._kernel

    # ---------------------------------------------------------------- refusals

    def enable_lora(self, *args, **kwargs):
        """Refused: raises ``NotImplementedError`` naming the class."""
        raise NotImplementedError(self._lora_refusal.format(cls=type(self).__name__))

    def quantize(self, *args, **kwargs):
        """Refused: raises ``NotImplementedError`` naming the class."""
        raise NotImplementedError(
            self._quantize_refusal.format(cls=type(self).__name__)
        )

    # ---------------------------------------------------------- saving/loading

    def _own_variables(self) -> list:
        """Kernel, bias if used, then the mask variables: the saving order."""
        variables = [self._kernel]
        if getattr(self, "bias", None) is not None:
            variables.append(self.bias)
        return variables + list(self._mask_variables())

    def save_own_variables(self, store):
        """``store["0"], store["1"], ...`` = kernel, bias if used, mask
        variables (nothing for an unbuilt layer)."""
        if self.built:
            for i, variable in enumerate(self._own_variables()):
                store[str(i)] = variable

    def load_own_variables(self, store):
        """Assigns ``store["0"], store["1"], ...`` in the order of
        ``save_own_variables``; a store holding another number of entries is a
        ``ValueError`` naming the layer and what it expected."""
        if not self.built:
            return
        variables = self._own_variables()
        if len(store.keys()) != len(variables):
            message = (
                f"Layer '{self.name}' expected {len(variables)} variables "
                f"{self._saved_contents} "
                f"but the saved file holds {len(store.keys())}."
            )
            hint = self._load_hint()
            raise ValueError(f"{message} {hint}" if hint else message)
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])

    def _plain_class(self) -> type:
        """The Keras layer class this layer extends (e.g. ``Dense``)."""
        return next(
            cls for cls in type(self).__mro__ if not issubclass(cls, KernelMaskMixin)
        )
