"""The reference DistilBERT training step, re-implemented from reading Hugging Face transformers'
`examples/research_projects/distillation/distiller.py` (commit 7f51f55), for bench/speed.py.

What it does, as the original does it: both models return full-vocabulary logits at every position
and all hidden states; KD (KLDivLoss "batchmean" of log_softmax(s/T) against softmax(t/T), times T^2)
over the positions selected by `masked_select` with the attention mask (all real tokens; with
`restrict_ce_to_mask`, the MLM targets); MLM cross-entropy over the full logits with ignore_index;
CosineEmbeddingLoss of the last hidden states at real tokens; a NaN check on the loss (a host sync);
backward, gradient clipping, AdamW (betas 0.9/0.98, eps 1e-6) and a linear schedule. Its fp16 path
used apex; here mixed precision is torch.autocast, its modern form.
"""

from __future__ import annotations

import torch
from torch import nn


class ReferenceDistiller:
    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float = 2.0, alpha_ce: float = 5.0,
                 alpha_mlm: float = 2.0, alpha_cos: float = 1.0, restrict_ce_to_mask: bool = False,
                 learning_rate: float = 5e-4, max_grad_norm: float = 5.0, total_steps: int = 1000,
                 autocast_dtype: torch.dtype | None = None):
        self.student, self.teacher = student.train(), teacher.eval()
        self.temperature, self.restrict_ce_to_mask = temperature, restrict_ce_to_mask
        self.alpha_ce, self.alpha_mlm, self.alpha_cos = alpha_ce, alpha_mlm, alpha_cos
        self.max_grad_norm, self.autocast_dtype = max_grad_norm, autocast_dtype
        self.ce_loss_fct = nn.KLDivLoss(reduction="batchmean")
        self.lm_loss_fct = nn.CrossEntropyLoss(ignore_index=-100)
        self.cosine_loss_fct = nn.CosineEmbeddingLoss(reduction="mean")
        no_decay = ["bias", "LayerNorm.weight"]
        groups = [
            {"params": [p for n, p in student.named_parameters() if not any(nd in n for nd in no_decay)
                        and p.requires_grad], "weight_decay": 0.0},
            {"params": [p for n, p in student.named_parameters() if any(nd in n for nd in no_decay)
                        and p.requires_grad], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=learning_rate, eps=1e-6, betas=(0.9, 0.98))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: max(0.0, 1 - step / total_steps))

    def loss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, lm_labels: torch.Tensor) -> torch.Tensor:
        student_outputs = self.student(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        with torch.no_grad():
            teacher_outputs = self.teacher(input_ids=input_ids, attention_mask=attention_mask,
                                           output_hidden_states=True)
        s_logits, s_hidden_states = student_outputs["logits"], student_outputs["hidden_states"]
        t_logits, t_hidden_states = teacher_outputs["logits"], teacher_outputs["hidden_states"]
        if self.restrict_ce_to_mask:
            mask = (lm_labels > -1).unsqueeze(-1).expand_as(s_logits)
        else:
            mask = attention_mask.unsqueeze(-1).expand_as(s_logits).bool()
        s_logits_slct = torch.masked_select(s_logits, mask).view(-1, s_logits.size(-1))
        t_logits_slct = torch.masked_select(t_logits, mask).view(-1, s_logits.size(-1))
        loss_ce = self.ce_loss_fct(
            nn.functional.log_softmax(s_logits_slct / self.temperature, dim=-1),
            nn.functional.softmax(t_logits_slct / self.temperature, dim=-1),
        ) * self.temperature**2
        loss = self.alpha_ce * loss_ce
        if self.alpha_mlm > 0.0:
            loss = loss + self.alpha_mlm * self.lm_loss_fct(s_logits.view(-1, s_logits.size(-1)), lm_labels.view(-1))
        if self.alpha_cos > 0.0:
            s_last, t_last = s_hidden_states[-1], t_hidden_states[-1]
            hidden_mask = attention_mask.unsqueeze(-1).expand_as(s_last).bool()
            dim = s_last.size(-1)
            s_slct = torch.masked_select(s_last, hidden_mask).view(-1, dim)
            t_slct = torch.masked_select(t_last, hidden_mask).view(-1, dim)
            target = s_slct.new(s_slct.size(0)).fill_(1)
            loss = loss + self.alpha_cos * self.cosine_loss_fct(s_slct, t_slct, target)
        return loss

    def step(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, lm_labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(input_ids.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            loss = self.loss(input_ids, attention_mask, lm_labels)
        if (loss != loss).data.any():
            raise RuntimeError("NaN detected")
        loss.backward()
        nn.utils.clip_grad_norm_(self.student.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        return loss.detach()
