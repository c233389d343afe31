"""What training minimises: BCE on the logits, plus optional L2 on the embedding rows a batch uses."""
from __future__ import annotations

import torch


class Objective:
    """`net` computes the logits (DDP or the bare model); `model` owns the embedding tables.

    The L2 term penalises only the rows a batch looks up (as the regularised MF baselines of
    Rendle et al. 2020 do), not whole tables, so rare items are not shrunk on every step.
    """

    def __init__(self, net: torch.nn.Module, model: torch.nn.Module, l2: float = 0.0):
        self.net, self.model, self.l2 = net, model, l2
        self.bce = torch.nn.BCEWithLogitsLoss()

    def __call__(self, users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.bce(self.net(users, items).float(), labels)
        if self.l2:
            loss = loss + self.l2 * self.model.embedding_penalty(users, items).float()
        return loss
