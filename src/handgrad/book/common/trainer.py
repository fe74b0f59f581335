"""The book's ``common.trainer.Trainer``, with its two sampling pitfalls fixed.

* Each epoch is one pass over a fresh permutation of the training set (minibatches drawn
  *without* replacement; the book draws every minibatch with replacement, so an "epoch" sees
  only ~63 % of the samples).
* An epoch is a whole number of steps, ``ceil(train_size / mini_batch_size)`` (the last batch
  may be smaller); the book's ``iter_per_epoch`` is a float, and ``i % 2.5 == 0`` skips epochs.

Accuracy is measured at the end of each epoch (the book measures after the first step of each
epoch, so its "epoch 1" is the untrained network). ``train_acc_list`` and ``test_acc_list`` get
one entry per epoch, as in the book.
"""

import math

import numpy as np

from .optimizer import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop

OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad, "rmsprop": RMSprop,
              "adam": Adam}


class Trainer:
    """``Trainer(network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100,
    optimizer='SGD', optimizer_param={'lr': 0.01}, evaluate_sample_num_per_epoch=None,
    verbose=True)``; ``train()`` runs every epoch and prints the final test accuracy.

    ``evaluate_sample_num_per_epoch``: measure the per-epoch accuracies on that many first samples
    of each set (all if None). The shuffling uses NumPy's global generator.
    """

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100,
                 optimizer="SGD", optimizer_param=None, evaluate_sample_num_per_epoch=None, verbose=True):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"Trainer: unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        self.network, self.verbose = network, verbose
        self.x_train, self.t_train, self.x_test, self.t_test = x_train, t_train, x_test, t_test
        self.epochs, self.batch_size = epochs, mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.optimizer = OPTIMIZERS[optimizer.lower()](**(optimizer_param or {"lr": 0.01}))
        self.train_size = x_train.shape[0]
        self.iter_per_epoch = max(math.ceil(self.train_size / mini_batch_size), 1)
        self.max_iter = epochs * self.iter_per_epoch
        self.current_iter = 0
        self.current_epoch = 0
        self._order = None
        self.train_loss_list, self.train_acc_list, self.test_acc_list = [], [], []

    def train_step(self):
        """One minibatch: gradient, update, loss; at the end of an epoch, the accuracies."""
        step_in_epoch = self.current_iter % self.iter_per_epoch
        if step_in_epoch == 0:
            self._order = np.random.permutation(self.train_size)
        batch = self._order[step_in_epoch * self.batch_size:(step_in_epoch + 1) * self.batch_size]
        x_batch, t_batch = self.x_train[batch], self.t_train[batch]

        grads = self.network.gradient(x_batch, t_batch)
        self.optimizer.update(self.network.params, grads)
        loss = self.network.loss(x_batch, t_batch)
        self.train_loss_list.append(loss)
        if self.verbose:
            print("train loss:" + str(loss))

        self.current_iter += 1
        if self.current_iter % self.iter_per_epoch == 0:
            self.current_epoch += 1
            self._evaluate()

    def _evaluate(self):
        count = self.evaluate_sample_num_per_epoch
        train_acc = self.network.accuracy(self.x_train[:count], self.t_train[:count])
        test_acc = self.network.accuracy(self.x_test[:count], self.t_test[:count])
        self.train_acc_list.append(train_acc)
        self.test_acc_list.append(test_acc)
        if self.verbose:
            print(f"=== epoch:{self.current_epoch}, train acc:{train_acc}, test acc:{test_acc} ===")

    def train(self):
        for _ in range(self.max_iter):
            self.train_step()
        test_acc = self.network.accuracy(self.x_test, self.t_test)
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))
