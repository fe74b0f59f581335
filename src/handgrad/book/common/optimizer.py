"""The book's ``common.optimizer``: ``SGD``, ``Momentum``, ``Nesterov``, ``AdaGrad``, ``RMSprop``,
``Adam``, each ``update(params, grads)`` in place, with the book's update rules and defaults.

They are not ``handgrad.optim``'s (which follow ``torch.optim``); README's table "The book's
optimizers and torch.optim" says where they differ. In short (g the gradient, t the step):

* ``Momentum``: ``v = momentum v - lr g; p += v``. torch keeps ``b = momentum b + g`` and
  steps ``p -= lr b``: the same steps while lr is constant (``v = -lr b``).
* ``Nesterov``: ``p += momentum^2 v - (1 + momentum) lr g``, then ``v = momentum v - lr g``:
  the Bengio et al. (2012) form of Nesterov momentum, the same steps as torch's
  ``SGD(nesterov=True)`` while lr is constant.
* ``AdaGrad``: ``h += g^2; p -= lr g / (sqrt(h) + 1e-7)`` (torch's eps is 1e-10).
* ``RMSprop``: ``h = decay h + (1 - decay) g^2; p -= lr g / (sqrt(h) + 1e-7)`` (torch's eps 1e-8).
* ``Adam``: ``m``, ``v`` as torch's; ``p -= lr sqrt(1 - beta2^t) / (1 - beta1^t) m / (sqrt(v) + 1e-7)``:
  the bias corrections folded into the step size, so eps is added to the uncorrected
  ``sqrt(v)`` (torch: ``lr m_hat / (sqrt(v_hat) + 1e-8)``); the two agree once ``sqrt(v)`` is
  much larger than eps.
"""

import numpy as np

#: Added to square roots before dividing by them (the book's value).
EPS = 1e-7


class _BookOptimizer:
    """``update(params, grads)`` calls :meth:`_step` once per parameter with its gradient and its
    state arrays (one per name in ``state_names``, zeros at the first update, kept as the
    book's attributes ``v``, ``h``, ``m``)."""

    state_names = ()

    def __init__(self, lr=0.01):  # the book's default learning rate (AdaGrad takes it as is)
        self.lr = lr
        for name in self.state_names:
            setattr(self, name, None)

    def update(self, params, grads):
        for name in self.state_names:
            if getattr(self, name) is None:
                setattr(self, name, {key: np.zeros_like(value) for key, value in params.items()})
        self._begin_update()
        for key, param in params.items():
            self._step(param, grads[key], *(getattr(self, name)[key] for name in self.state_names))

    def _begin_update(self):
        """Called once per update, before the steps (Adam counts its updates here)."""

    def _step(self, param, grad, *state):  # pragma: no cover - every optimizer overrides it
        raise NotImplementedError


class SGD(_BookOptimizer):
    """``p -= lr g``."""

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _step(self, param, grad):
        param -= self.lr * grad


class Momentum(_BookOptimizer):
    """``v = momentum v - lr g``; ``p += v``."""

    state_names = ("v",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def _step(self, param, grad, velocity):
        velocity *= self.momentum
        velocity -= self.lr * grad
        param += velocity


class Nesterov(Momentum):
    """Nesterov momentum, written on the parameters themselves (not at the look-ahead point):
    ``p += momentum^2 v - (1 + momentum) lr g``; ``v = momentum v - lr g``."""

    def _step(self, param, grad, velocity):
        step = self.lr * grad
        param += self.momentum * self.momentum * velocity - (1.0 + self.momentum) * step
        velocity *= self.momentum
        velocity -= step


class AdaGrad(_BookOptimizer):
    """``h += g^2``; ``p -= lr g / (sqrt(h) + 1e-7)``."""

    state_names = ("h",)

    def _step(self, param, grad, squares):
        squares += grad * grad
        param -= self.lr * grad / (np.sqrt(squares) + EPS)


class RMSprop(AdaGrad):
    """``h = decay_rate h + (1 - decay_rate) g^2``; ``p -= lr g / (sqrt(h) + 1e-7)``."""

    def __init__(self, lr=0.01, decay_rate=0.99):
        super().__init__(lr)
        self.decay_rate = decay_rate

    def _step(self, param, grad, squares):
        squares *= self.decay_rate
        squares += (1.0 - self.decay_rate) * grad * grad
        param -= self.lr * grad / (np.sqrt(squares) + EPS)


class Adam(_BookOptimizer):
    """``m = beta1 m + (1 - beta1) g``; ``v = beta2 v + (1 - beta2) g^2``;
    ``p -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + 1e-7)``, t counting updates."""

    state_names = ("m", "v")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        super().__init__(lr)
        self.beta1, self.beta2 = beta1, beta2
        self.iter = 0
        self._step_size = None

    def _begin_update(self):
        self.iter += 1
        self._step_size = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)

    def _step(self, param, grad, first, second):
        first += (1.0 - self.beta1) * (grad - first)
        second += (1.0 - self.beta2) * (grad * grad - second)
        param -= self._step_size * first / (np.sqrt(second) + EPS)
