"""The field's contrastive and graph learners after SM-SGE (Rao et al.): SimMC, SPC-MGR, Hi-MPC, MG-SCR, TranSG."""
